"""The application shell: the ``ibet`` command line and what composes several stages (the embedded
demo and its stand-in partners, ``ibet up``, the run report, DLQ replay, the benchmarks).

It stands above the stage packages and is the only package that imports several of them; the
kernel (:mod:`ibet`) and the stages never import it.
"""
