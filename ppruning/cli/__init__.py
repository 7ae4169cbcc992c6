"""The ``ppruning`` command line; see :mod:`ppruning.cli.main`."""
