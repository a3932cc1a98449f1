"""``matcher init``: profile source files and write a starting ``sources:`` config.

:mod:`~matcher.profiling.profile` reads the first rows of each file and measures every
column; :mod:`~matcher.profiling.kinds` decides what each column holds from its name and
content; :mod:`~matcher.profiling.starting_config` maps the columns across sources and
builds (and writes) the config.
"""
