"""Inputs an attacker (or a runaway generator) sends, shared by the tests of the limits."""

from __future__ import annotations

#: A few hundred bytes of YAML whose aliases stand for 9^9 strings (a "billion laughs"): as
#: JSON, gigabytes.
ALIAS_BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
steps:
  - command: echo
    env: {X: *i}
"""

#: How the pipeline parser (server and agent alike) refuses it with the default limits.
ALIAS_BOMB_REFUSAL = (
    "Pipeline's aliases expand it by 926177086 nodes, more than the limit of 100000: "
    "use fewer aliases of large anchors"
)
