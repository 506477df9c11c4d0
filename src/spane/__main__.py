from spane.cli import main

main()
