"""The ``vip2clip`` command line."""
