"""Light curves as data: the LightCurves table (table.py), object id codes (object_ids.py), survey presets and flux
conversions (surveys.py), the row checks every reader applies (rows.py), Parquet/CSV sources read in chunks
(sources.py), the file readers and writer (io.py) and synthetic curves (synth.py). Labelled data sets:
mbfast.datasets."""
