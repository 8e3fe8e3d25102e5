"""Matchers: one module per kind of rule matcher.

Importing the package registers the built-in kinds in this order, which is the order messages
list them in ("a matcher is one of: keywords, keywords_file, regex, ...").
"""

from . import keywords, regex, hash_list, fields, logic  # noqa: F401  (each registers its kinds)
