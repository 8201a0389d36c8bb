"""Who holds what: Lease electors (global, per unit, scalable) over the API server's Leases.

Rule: the electors hand their outcome down as data; pure decisions (rendezvous ranking, observation,
records) import no clock and no client, and every write is a compare-and-swap on a version judged
stealable. A holder stops announcing before its Lease can expire (fencing).
"""
