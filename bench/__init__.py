"""`make bench` (`python -m bench`): what each registry operation costs Berth in AWS calls,
Lambda bytes, S3 bytes and handler time on the local mode (moto), and skopeo's push and pull
against Berth beside Debian's docker-registry on the same moto. With `--big` (`make bench
BIG=1`), also a 200 MiB and a 1 GiB layer through `berth push`, `berth relay` and
docker-registry: wall time, peak memory, S3 bytes written. Figures are printed beside their
goals and written to bench/out/latest.json; nothing here asserts a timing.

Modules, one job each:

| module | job |
|---|---|
| `awsbackend` | moto in this process, with a tap on every request it serves; provisioning |
| `awstap` | the tap: classifies each request moto serves (service, operation, signed or presigned, bytes written) |
| `awscalls` | counts botocore calls (and the time spent in them) on the registry's own clients |
| `handler` | the Lambda handler in process, through the API Gateway stand-in, timed and metered |
| `images` | random OCI images, in memory and as OCI layouts |
| `client` | a registry client on top of `handler` that sends what skopeo sends |
| `operations` | the per-operation scenarios and their measurement |
| `coldstart` | `import app` in fresh processes, and the first request plain and after a SnapStart restore |
| `completion` | `python -m bench.completion`: an upload finish's work against part count and bytes (the 29 s) |
| `localmode`, `reference`, `skopeo`, `sidebyside` | skopeo against Berth's local mode and against docker-registry |
| `listening` | free ports, and whether a registry started there answers yet |
| `biglayout`, `processes` | `--big`: a GiB layer built on disk; client commands timed, with their peak memory |
| `relay`, `biglayers` | `--big`: `berth relay` as its own process; the three paths, size by size |
| `goals`, `report`, `stats` | the goals, the table and the JSON, medians and percentiles |
"""
