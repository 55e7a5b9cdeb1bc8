"""printing: derivations as text, JSON-ready records, and LaTeX in the notes' notation.

Where it sits: above derive, beside compile (core → graph → derive → printing). :mod:`.text` holds
the text format (``TextPrinter``: Unicode math for a terminal, ŷ, x₁, cases as cases; names through
``names.text_name``), the plain printer the engines write their words with, and the sympify
printer of JSON; :mod:`.latex` the notes' printer (SymPy's LatexPrinter with
``_print_<Class>`` methods), laid out by :mod:`.layout` (rows broken to a width measured by
:mod:`.width`), naming symbols through :mod:`.names` (the notation presets and the one escaping
table), writing justifications through :mod:`.words`, sums in the notes' order through
:mod:`.terms`. ``Derivation.to_text/to_latex/to_dict`` reach this package through core's one
printing hook, ``symgrad.core.derivation._printing``.
"""
from symgrad.printing import indexed as _indexed  # registers the esl preset and the index printer
from symgrad.printing.latex import latex, notebook_latex, to_latex, words_latex
from symgrad.printing.names import portable_math, text_escape
from symgrad.printing.text import PlainPrinter, SympifyPrinter, TextPrinter, to_dict, to_text

__all__ = ["latex", "to_latex", "notebook_latex", "words_latex", "portable_math", "text_escape",
           "PlainPrinter", "SympifyPrinter", "TextPrinter", "to_dict", "to_text"]
