"""Inference modes behind one interface (:class:`~vidpan.inference.modes.base.ModeRunner`):
``online`` / ``minvis`` (:mod:`.online`, :mod:`.minvis`), ``offline`` (:mod:`.offline`) and
``long`` (:mod:`.long`); :func:`~vidpan.inference.modes.base.build_mode` picks one."""
