"""Training the pose model from simulated rooms: the optional ``train`` extra (``pip install .[train]``).

``dataset`` (labelled windows from the simulator, through the serving path, cached as .npz), ``model``
(the Keras network), ``train`` (permutation-invariant losses, the fit loop), ``export`` (int8 TFLite) and
``__main__`` (``python -m appliance.pose.training build --out appliance/pose/models/``). This package is
the only place in the project that imports tensorflow; the appliance and its tests never import it.
"""
