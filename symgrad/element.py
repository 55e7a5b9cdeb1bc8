"""Placeholder until the element-level engine lands (derive_element)."""


def derive_element(net, name, **kw):
    raise NotImplementedError("element level is not built yet")
