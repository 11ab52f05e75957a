from osptrack.cli import main

main()
