"""Fitting the sensing estimators on simulated training rooms: the optional ``train`` extra.

``data`` (episodes through the serving path, one ``.npz`` each in a cache), ``likelihood`` (the link
likelihood's constants, by regression), ``classifier`` (the count/activity network and its int8 export)
and ``__main__`` (``python -m appliance.pose.training data|build``). This package is the only place in the
project that imports tensorflow; the appliance and its tests never import it.
"""
