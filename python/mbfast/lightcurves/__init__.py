"""Light curves as data: the LightCurves table (table.py), object id codes (object_ids.py), survey presets and flux
conversions (surveys.py), the row checks every reader applies (rows.py), Parquet/CSV sources read in chunks
(sources.py), the file readers and writer (io.py), SNANA text files (snana.py), labelled light curves (labelled.py),
the PLAsTiCC sample shipped in mbfast/data (sample.py) and synthetic curves (synth.py). The training data sets:
mbfast.train.datasets."""
