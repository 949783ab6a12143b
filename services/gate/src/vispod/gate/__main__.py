"""`python -m vispod.gate`: runs the promotion gate."""

from vispod.gate.service import main

if __name__ == "__main__":
    main()
