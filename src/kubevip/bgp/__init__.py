"""The BGP speaker: ExaBGP as a child process, its configuration, and what it announces.

Rule: side effects only. The speaker knows nothing of Kubernetes (Service annotations are parsed in
`kubevip.core.bgp`); it announces the advertisements it is given and decides nothing above them.
"""
