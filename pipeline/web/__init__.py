"""The case review web app (`compliance serve`): a queue, case pages with evidence and history,
decisions with a reason, claims, enforcement plans approved by an approver, and the rules.

Everything a page does goes through the same store, enforcement and audit functions the CLI uses.
"""
