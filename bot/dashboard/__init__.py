"""The results dashboard: metrics as domain functions (``metrics``), their presentation
(``views``) and the ``/dashboard`` routes (``routes``)."""
