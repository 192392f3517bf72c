"""HTTP layer: routers, schemas, dependencies and error mapping over ``service.manager``."""
