"""A classifier over features.parquet (`osptrack model train | evaluate`).

Not osptrack.dataset.model, which holds the dataset builder's records. scikit-learn is imported
only inside these modules, so the rest of osptrack (and `osptrack --help`) never pays for it.
"""
