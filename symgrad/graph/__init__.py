"""graph: a network as plain data (above core).

:mod:`.network` (``Graph``: nodes, ops, parameters, loss; ``mlp``), :mod:`.activations`,
:mod:`.losses`, and :mod:`.files` (the one loader of a user's network file). The engines in
``symgrad.derive`` read a Graph; nothing here knows how it is differentiated or compiled.
"""
