"""handouts: whole documents built from derivations (above derive and printing).

:mod:`.build` (the content of a handout for a network or for plain derivations), :mod:`.backward`
(its backward-pass and algorithm sections), :mod:`.model` (the document model), :mod:`.render`
(article, beamer, Markdown), :mod:`.pdf` (pdflatex). The package is ``handouts`` so that it never
shadows the function ``symgrad.handout``.
"""
