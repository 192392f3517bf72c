"""Docker cannot run here, so the deployment files are checked for what can be checked: they parse,
every ``HEBB_*`` variable they set is a setting of ``service.settings.Settings`` with a valid value,
ports and probes agree with the settings and the app's routes, and the pieces reference each other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from service.app import create_app
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SETTING_OF_ENV = {f"HEBB_{name.upper()}": name for name in Settings.model_fields}
DEFAULT_PORT = Settings.model_fields["port"].default


def app_routes() -> set[str]:
    return set(create_app(Settings(store="memory://")).openapi()["paths"])


def settings_from_env(env: dict[str, str]) -> Settings:
    """Validate a container's HEBB_* environment as the service would (unknown names fail)."""
    unknown = sorted(set(env) - set(SETTING_OF_ENV))
    assert not unknown, f"{unknown} are not settings (known: {sorted(SETTING_OF_ENV)})"
    return Settings(**{SETTING_OF_ENV[k]: v for k, v in env.items()})


# ----------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck_and_hebb_serve():
    instructions = dockerfile_instructions()
    froms = [rest for kw, rest in instructions if kw == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    base = dict(re.findall(r"(\w+)=(\S+)", " ".join(rest for kw, rest in instructions if kw == "ARG")))["PYTHON_IMAGE"]
    assert base.startswith("python:3.11") and "slim" in base
    runtime_start = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    runtime = instructions[runtime_start:]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(rest for kw, rest in runtime if kw == "ENV")))
    user = [rest for kw, rest in runtime if kw == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    # numba's cache directory is set, created and owned by the runtime user
    cache = env["NUMBA_CACHE_DIR"]
    run = " ".join(rest for kw, rest in runtime if kw == "RUN")
    assert f"mkdir -p" in run and cache in run and "chown -R hebb:hebb" in run
    hebb_env = {k: v for k, v in env.items() if k.startswith("HEBB_")}
    settings = settings_from_env(hebb_env)
    assert settings.host == "0.0.0.0"
    expose = [rest for kw, rest in runtime if kw == "EXPOSE"]
    assert expose == [str(settings.port)]
    healthcheck = next(rest for kw, rest in runtime if kw == "HEALTHCHECK")
    assert "/healthz" in healthcheck and "HEBB_PORT" in healthcheck and "/healthz" in app_routes()
    entrypoint = next(rest for kw, rest in runtime if kw == "ENTRYPOINT")
    assert yaml.safe_load(entrypoint) == ["hebb", "serve"]
    assert (DEPLOY / "Dockerfile.dockerignore").exists()


# ----------------------------------------------------------------------------- compose


def test_compose_runs_hebb_on_redis_with_aof_everysec_and_a_volume():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    volume, _, mount = redis["volumes"][0].partition(":")
    assert mount == "/data" and volume in compose["volumes"]
    roles = {}
    for name in ("hebb", "learner", "predictor"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        env = {k: str(v) for k, v in service["environment"].items()}
        env["HEBB_API_KEYS"] = ""                      # ${HEBB_API_KEYS:-} from the caller's shell
        settings = settings_from_env(env)
        assert settings.store.startswith("redis://redis:6379/")
        for port in service["ports"]:
            assert port.rsplit(":", 1)[1] == str(settings.port)
        roles[name] = settings
    assert [roles[n].role for n in ("hebb", "learner", "predictor")] == ["all", "learner", "predictor"]
    # a role-all process takes no leases: it never shares a database with learners
    assert roles["hebb"].store != roles["learner"].store == roles["predictor"].store


# ----------------------------------------------------------------------------- kubernetes


def k8s_objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def container_env(container: dict, objects: dict) -> dict[str, str]:
    """The container's HEBB_* environment: envFrom ConfigMaps, then env (Secret refs resolved)."""
    env = {}
    for source in container.get("envFrom", []):
        env.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = objects[("Secret", ref["name"])]["stringData"][ref["key"]]
    return {k: str(v) for k, v in env.items() if k.startswith("HEBB_")}


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                         if p.name != "kustomization.yaml")


@pytest.mark.parametrize("kind, name, role", [("StatefulSet", "hebb-learner", "learner"),
                                              ("Deployment", "hebb-predictor", "predictor")])
def test_k8s_workloads_agree_with_the_settings(kind, name, role):
    objects = k8s_objects()
    routes = app_routes()
    workload = objects[(kind, name)]
    pod = workload["spec"]["template"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    settings = settings_from_env(container_env(container, objects))
    assert settings.role == role
    assert settings.api_key_scopes(), "API keys come from the Secret"
    assert any(e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"] if e["name"] == "HEBB_API_KEYS")
    # the store is the Redis Service, on its port
    redis_service = objects[("Service", "hebb-redis")]
    assert settings.store == f"redis://hebb-redis:{redis_service['spec']['ports'][0]['port']}/0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"/healthz", "/readyz"} <= routes
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/cache/hebb/numba" in mounts, "numba's cache must stay writable on a read-only root filesystem"
    services = [s for (k, _), s in objects.items() if k == "Service"
                and s["spec"]["selector"] == {"app.kubernetes.io/name": pod["metadata"]["labels"]["app.kubernetes.io/name"]}]
    assert services
    for service in services:
        assert all(p["targetPort"] in ports for p in service["spec"]["ports"])


def test_predictors_autoscale_and_learners_are_a_statefulset():
    objects = k8s_objects()
    hpa = objects[("HorizontalPodAutoscaler", "hebb-predictor")]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hebb-predictor"}
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    learners = objects[("StatefulSet", "hebb-learner")]
    assert learners["spec"]["replicas"] >= 2, "one active learner and a standby"
    assert learners["spec"]["serviceName"] in {name for kind, name in objects if kind == "Service"}
    redis = objects[("StatefulSet", "hebb-redis")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert redis[redis.index("--appendonly") + 1] == "yes" and redis[redis.index("--appendfsync") + 1] == "everysec"
