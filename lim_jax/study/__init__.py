"""Cross-family studies (``python -m lim_jax.compare``): run planning (:mod:`.plan`), running and
resuming (:mod:`.runner`), statistics over seeds (:mod:`.stats`) and the report (:mod:`.report`)."""
