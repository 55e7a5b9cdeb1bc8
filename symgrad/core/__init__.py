"""core: the bottom layer. Nothing here imports another symgrad layer.

- :mod:`.parse`: the safe parser (its own tokenizer and recursive descent; never eval/sympify);
- :mod:`.primitives`: the elementwise primitives (relu, sigmoid, erf, …), one registration each;
- :mod:`.matexpr`: matrix-expression nodes SymPy lacks, and the per-example → batch map;
- :mod:`.derivation`: derivation records (``Step``, ``Derivation``) and display nodes;
- :mod:`.evaluate`: a float evaluator for the element level's bounded self-check;
- :mod:`.scripts`: a sub- or superscript on printed LaTeX, never a double one.

Layers (imports flow one way, checked by tests/test_layers.py): core ← graph ← derive ←
{compile, printing} ← {handouts, run} ← the facade (``symgrad.network``, ``symgrad/__init__``,
``symgrad.cli``). The one upward reach is documented where it is: ``derivation._printing``.
"""
