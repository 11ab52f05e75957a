from osptrack.entry import run

run(server=False)  # `python -m osptrack.cli` stays a direct process (tests, debugging)
