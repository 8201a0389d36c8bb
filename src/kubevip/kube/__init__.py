"""The one Kubernetes boundary: REST client, kubeconfig and in-cluster credentials, list/watch, HTTP
error mapping and the writers (status, annotations, Events).

Rule: the only room that talks HTTP to the API server; it parses nothing into decisions (raw JSON in,
raw JSON out) and knows no election, kernel or BGP.
"""
