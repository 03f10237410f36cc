"""Unknown query parameters are refused (400), never silently ignored: a client that misspells `state` as `status`
would otherwise get every case instead of the ones it asked for, and believe the answer."""

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from services.common.errors import BadRequest

_declared: dict[int, tuple[APIRoute, frozenset[str]]] = {}  # by id: routes are not hashable


def declared_query_parameters(route: APIRoute) -> frozenset[str]:
    known = _declared.get(id(route))
    if known is not None and known[0] is route:
        return known[1]
    names: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        for field in dependant.query_params:
            annotation = field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names.update(f.alias or name for name, f in annotation.model_fields.items())
            else:
                names.add(field.alias)
        pending.extend(dependant.dependencies)
    _declared[id(route)] = (route, frozenset(names))
    return _declared[id(route)][1]


async def reject_unknown_query_parameters(request: Request) -> None:
    """An app-wide dependency: 400 naming each query parameter the matched route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    unknown = sorted(set(request.query_params) - declared_query_parameters(route))
    if unknown:
        raise BadRequest("unknown query parameter(s): " + ", ".join(name[:40] for name in unknown[:10]),
                         errors=[{"loc": ["query", name[:40]], "msg": "not a parameter of this route",
                                  "type": "unknown_parameter"} for name in unknown[:10]])
