# The agent image: `kubevip manager` (and `kubevip manifest ...`). Build: docker build -t kubevip:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# Netlink and raw sockets come from Python (pyroute2, socket); packet rules (egress SNAT, Service
# security) go through nft, one transaction per change (src/kubevip/net/nftables.py).
RUN apt-get update && apt-get install -y --no-install-recommends nftables && rm -rf /var/lib/apt/lists/*
COPY --from=build /install /usr/local
# The compiled methods of the agent's dataclasses and the programs of the regexes its imports compile,
# beside its bytecode: every start reads them instead of compiling 623 texts and 111 patterns again
# (about 50 ms of CPU per agent start, src/kubevip/startup.py).
RUN python -m kubevip.startup
# NET_ADMIN (addresses, nftables) and NET_RAW (ARP / NA) are granted by the manifests, not by the image.
ENTRYPOINT ["kubevip"]
CMD ["manager"]
