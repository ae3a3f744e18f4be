"""The pages' Jinja templates, installed as the package `intake.templates`.

The directory stays at the top of the repository; setup.py maps it into the package, so
that `intake.resources` finds it by import from a checkout and from a wheel alike.
"""
