from irralctl.cli.main import main

main()
