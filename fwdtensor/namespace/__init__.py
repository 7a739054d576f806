"""The namespace built from the rule tables (``ft.*``, ``ft.linalg``, ``ft.fft``)."""
