"""`python -m storybuild`."""

from storybuild.cli.main import main

if __name__ == "__main__":
    main()
