from hostnet.cli.main import main

main()
