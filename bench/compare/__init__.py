"""``python -m bench.compare``: authz next to the alternatives, on one machine, in one run.

Six setups answer the same vendor-staff request under the same load generator
(h2load, pinned to its own CPU, the servers on the other): a bare gRPC server (the
ceiling for any Python gRPC server), ``authz serve`` over gRPC, Envoy alone, Envoy
with its native JWT + RBAC filters, Envoy + ext_authz to authz, and Cerbos. Each gets
a closed-loop saturation run and open-loop runs at fixed rates; the output is a table,
a JSON file and a plot of p99 against offered rate. See bench/README.md.
"""
