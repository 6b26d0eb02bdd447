"""``python -m benchmarks.push_mpc``: see :mod:`benchmarks.push_mpc`."""

from benchmarks.push_mpc import main

if __name__ == "__main__":
    main()
