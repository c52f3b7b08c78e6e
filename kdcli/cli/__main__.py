"""`python -m kdcli.cli ...`: how torchrun and accelerate launch start kdcli in every process."""

from kdcli.cli import main

if __name__ == "__main__":
    main()
