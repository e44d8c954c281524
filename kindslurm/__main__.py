from kindslurm.cli import main

main()
