from osptrack.entry import run

run()
