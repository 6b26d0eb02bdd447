"""``python -m agents.beta_vae``: run the command line (:mod:`agents.beta_vae.cli`)."""

from agents.beta_vae.cli import main

if __name__ == "__main__":
    main()
