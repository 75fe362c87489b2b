"""Light curves as data, from the bottom up: the row fields and how a refused row is worded (fields.py), object id
codes (object_ids.py), survey presets (surveys.py), Parquet/CSV sources read in chunks (sources.py), the row checks
every reader applies (rows.py), the LightCurves table (table.py), flux conversions (photometry.py), the file readers
and writer (io.py), SNANA text files (snana.py), labelled light curves (labelled.py), the PLAsTiCC sample shipped in
mbfast/data (sample.py) and synthetic curves (synth.py). The training data sets: mbfast.train.datasets."""
