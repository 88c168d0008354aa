"""What one GraphQL document may cost, measured before anything runs it.

Usher faces the internet (DESIGN.md, "Safe to expose"): a request must never cost the
server far more than it costs the caller. A few hundred bytes of fragments that spread
each other twice expand exponentially; a page of groups whose members each list their
groups' members asks for millions of rows; thousands of fields sharing one name make
graphql-core's OverlappingFieldsCanBeMerged rule quadratic. So every document is parsed
with a token budget and then measured here, before graphql-core's validation and
before any resolver, in time linear in its size: each definition is walked once and a
fragment spread reuses the fragment's measure instead of walking it again. A document
over a limit is refused with a `QUERY_TOO_COMPLEX` error that names the limit. A
mutation is also refused beyond MAX_MUTATION_FIELDS root fields: it is never stopped
half-way, so its size is bounded before it runs, while a query is stopped after the time
limit (`QueryTimeLimit`).

The cost is an upper bound on the objects a response can hold, so it must never be
below what the resolvers may return:
- every field counts 1 (a list of scalars too: its items are plain values);
- a field with a `first` argument multiplies what it contains by its page size (1 to
  MAX_PAGE; left out, the schema's default), and the `edges` of its connection count
  once, being that page;
- any other list of objects multiplies what it contains by its maximum in
  LIST_MAXIMUMS, the one table of how long each such list can be: the resolvers cut
  their lists at these numbers (a payload's, by the size of its input), and a test keeps
  the table complete;
- introspection's lists, answered from memory, by INTROSPECTION_LIST_ESTIMATE;
- the selections of a field add up, fragments included, branches on different types too.

Clients send the same few documents over and over, so a document is parsed, measured and
validated once and then found by its text (`DocumentCache`), every limit still in force:
what a cached document was refused for it is refused for again, each time, and a cost
that depends on the variables (`first: $n`) is measured again with each request's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    DefinitionNode,
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionNode,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    Undefined,
    VariableNode,
    Visitor,
    get_named_type,
    get_nullable_type,
    is_introspection_type,
    is_leaf_type,
    is_list_type,
    parse,
    visit,
)
from graphql.validation import ASTValidationRule
from graphql.validation.rules import overlapping_fields_can_be_merged
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType as ExecutedOperationType

from app.graphql.errors import PublicError
from app.services.accept import MAX_IDS
from app.services.autojoin import MAX_DOMAINS
from app.services.invitations import MAX_INVITEES
from app.services.pages import MAX_PAGE
from app.services.webhooks import MAX_ENDPOINTS

# The largest body accepted on /graphql (HTTP 413 beyond). The largest real request, an
# `invite` of 100 people with metadata for each, is a few tens of kilobytes.
MAX_BODY_BYTES = 1024 * 1024

# Nesting of the JSON in a body or in `variables`. Real variables and metadata nest a few
# levels; much deeper values would reach Python's recursion limit wherever they are
# encoded again (the response, the database, webhooks).
MAX_JSON_DEPTH = 64

# Lexical tokens in a document. Parsing is linear in tokens; the largest real document,
# an `invite` with 100 invitees written inline, has under 2,000.
MAX_TOKENS = 10_000

# Comments in a document: the lexer keeps each one in memory. GraphiQL's welcome text is
# about 30 lines.
MAX_COMMENTS = 1_000

# Fragment definitions in a document. Generated clients define one per component; a
# page of an admin app uses a few dozen.
MAX_FRAGMENTS = 100

# Field selections written in a document (each fragment counted once). graphql-core's
# check that same-named fields can merge compares them pairwise; GraphiQL's
# introspection query has about 100.
MAX_FIELDS = 1_000

# Aliases written in a document. Each one makes a field run again (for instance one
# more token guess or mutation in a single request); screens need a handful.
MAX_ALIASES = 100

# Directives written in a document (@include, @skip); clients use a few.
MAX_DIRECTIVES = 50

# Root fields of a mutation. They run one after another, and a mutation is never stopped
# half-way (each invitee of `invite` is committed on its own, by design, so stopping one
# would leave part of its writes behind): this number is what bounds one request's writes.
# 10 `invite`s of 100 are 1,000 invitations, a group's default daily quota. Clients batch
# with the list inputs (invitees, ids), not with aliases.
MAX_MUTATION_FIELDS = 10

# Nesting of fields. GraphiQL's introspection query is 15 deep (nine `ofType` levels);
# Usher's own deepest useful path, a group's invitations with their group's members'
# users, is 10.
MAX_DEPTH = 15

# The longest list input a mutation takes: invitees, ids to accept, autojoin domains.
MAX_INPUT_ITEMS = max(MAX_INVITEES, MAX_IDS, MAX_DOMAINS)

# The most items of every list of objects the API returns outside a connection, by
# "Type.field". The resolvers cut their lists here (and say so in their descriptions);
# the cost counts each list at this maximum. A list missing from the table is counted
# as UNLISTED, and `unbounded_lists` (checked by the tests) finds it.
LIST_MAXIMUMS: dict[str, int] = {
    # The signed-in user's most recent memberships: an admin of many workspaces pages
    # through them with `Group` queries; 100 fill any menu.
    "Viewer.memberships": 100,
    # The most recent events of one invitation: a life of sends, resends and renewals
    # fits; a screen shows the latest.
    "Invitation.events": 50,
    # What one address is offered: more than a person can read on a signup page.
    "OpenInvitations.invitations": 100,
    "OpenInvitations.autojoinGroups": 100,
    # Payloads hold at most one item per item of their list input, which the services
    # bound (100 invitees, ids or domains); errors, one per item of the largest.
    "InvitePayload.invitations": MAX_INVITEES,
    "AcceptPayload.invitations": MAX_IDS,
    "AcceptPayload.memberships": MAX_IDS,
    "InvitePayload.errors": MAX_INPUT_ITEMS,
    "AcceptPayload.errors": MAX_INPUT_ITEMS,
    "GroupPayload.errors": MAX_INPUT_ITEMS,
    "InvitationPayload.errors": MAX_INPUT_ITEMS,
    # A group has at most MAX_DOMAINS autojoin domains.
    "Group.domains": MAX_DOMAINS,
    # At most MAX_ENDPOINTS exist; a payload's errors concern one endpoint's input.
    "Query.webhookEndpoints": MAX_ENDPOINTS,
    "WebhookEndpointPayload.errors": MAX_INPUT_ITEMS,
}

# A list of objects missing from LIST_MAXIMUMS is counted as a full page.
UNLISTED = MAX_PAGE

# The schema's own lists in introspection, answered from memory: Usher's schema has 44
# types, 3.3 fields per type and 0.3 arguments per field on average. GraphiQL's
# introspection query then costs about 8,600 (its answer has 3,500 nodes); counted as
# 10 each, it would cost 52,000.
INTROSPECTION_LIST_ESTIMATE = 5

# Costs are clamped here, so a document that expands exponentially never builds huge
# integers; anything this large is far over any limit.
COST_CEILING = 10**12

# Work budget of graphql-core's OverlappingFieldsCanBeMerged rule, which compares fields
# sharing a response name pairwise. Its default, 500,000, lets 500 `invitation(id: …)`
# fields with different ids take 2 seconds; at 50,000 such a document is stopped
# ("Validation aborted.") in a quarter of a second. GraphiQL's introspection query needs
# under 5,000.
OVERLAP_BUDGET = 50_000

TOO_COMPLEX = "QUERY_TOO_COMPLEX"

# Parsed documents kept by their text (least recently used dropped first): at most
# CACHED_DOCUMENTS of them, of CACHED_TEXT_CHARS characters each and CACHED_TEXT_TOTAL
# together. A client sends a few dozen distinct documents of a few kilobytes (GraphiQL's
# introspection query is 2 KB); a longer one, or one with its values written inline, is
# parsed and validated each time, as before. The densest text parses to about 300 bytes
# a character, so whatever clients send the cache holds under 40 MB.
CACHED_DOCUMENTS = 512
CACHED_TEXT_CHARS = 8 * 1024
CACHED_TEXT_TOTAL = 128 * 1024

log = logging.getLogger("usher.graphql")


def refusal(message: str, limit: int | None = None, measured: int | None = None) -> PublicError:
    """The error for a document over one of the limits (both numbers also in `extensions`)."""
    numbers = {"limit": limit, "measured": measured}
    return PublicError(message, TOO_COMPLEX, **{k: v for k, v in numbers.items() if v is not None})


def bound_validation() -> None:
    """Lower graphql-core's budget for comparing same-named fields (its documented knob)."""
    overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = OVERLAP_BUDGET


def json_too_deep(value: object) -> bool:
    """True if `value` nests lists and objects deeper than MAX_JSON_DEPTH (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if not isinstance(item, list):
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


# Longer number literals are no number Usher takes; Python refuses int() of one over 4,300
# digits with a ValueError that would end the request in "Unexpected error.".
MAX_NUMBER_LENGTH = 100


class _LongNumbers(Visitor):
    def enter_int_value(self, node: IntValueNode, *_: Any) -> None:
        self._check(node.value)

    def enter_float_value(self, node: FloatValueNode, *_: Any) -> None:
        self._check(node.value)

    def _check(self, value: str) -> None:
        if len(value) > MAX_NUMBER_LENGTH:
            raise GraphQLError(
                f"A number literal has more than {MAX_NUMBER_LENGTH} characters.",
                extensions={"code": "GRAPHQL_PARSE_FAILED"},
            )


def parse_document(query: str) -> DocumentNode:
    """Parse with the token and comment budgets; a document over them is refused, and
    so is a number literal no field could take."""
    try:
        document = parse(query, max_lexical_tokens=MAX_TOKENS, max_comments=MAX_COMMENTS)
    except GraphQLSyntaxError as error:
        if f"more than {MAX_TOKENS} tokens" in error.message:
            raise refusal(
                f"The document has more than {MAX_TOKENS} tokens, the limit.", MAX_TOKENS
            ) from None
        if f"more than {MAX_COMMENTS} comments" in error.message:
            raise refusal(
                f"The document has more than {MAX_COMMENTS} comments, the limit.", MAX_COMMENTS
            ) from None
        raise
    visit(document, _LongNumbers())
    return document


@dataclass(frozen=True)
class Measure:
    """Cost and depth of a selection set, and the fields it selects at its own level."""

    cost: int = 0
    depth: int = 0
    fields: int = 0


@dataclass
class Measurement:
    """What a document asks for: written counts, and the depth and cost of its operation."""

    fragments: int = 0
    fields: int = 0
    aliases: int = 0
    directives: int = 0
    depth: int = 0
    cost: int = 0
    # Root fields of the mutation (through fragments), 0 for a query.
    mutation_fields: int = 0
    # Selections and definitions walked: the checker's own work, linear in the document.
    visited: int = 0
    # True if a variable's value (a `first: $n`) went into the cost, so another request
    # with the same document must be measured again.
    depends_on_variables: bool = False


@lru_cache(maxsize=8)
def page_types(schema: GraphQLSchema) -> frozenset[str]:
    """Types returned by fields with `first`: their lists are the page, counted there."""
    names = set()
    for gtype in schema.type_map.values():
        if isinstance(gtype, GraphQLObjectType | GraphQLInterfaceType):
            for gfield in gtype.fields.values():
                if "first" in gfield.args:
                    names.add(get_named_type(gfield.type).name)
    return frozenset(names)


def unbounded_lists(schema: GraphQLSchema) -> list[str]:
    """Lists of objects the schema returns with no maximum in LIST_MAXIMUMS, and entries
    of the table that name no such list; both empty in a consistent schema."""
    lists = set()
    for gtype in schema.type_map.values():
        if is_introspection_type(gtype) or gtype.name in page_types(schema):
            continue  # answered from memory, or a connection's page
        if isinstance(gtype, GraphQLObjectType | GraphQLInterfaceType):
            lists |= {f"{gtype.name}.{n}" for n, f in gtype.fields.items() if _object_list(f)}
    return sorted(lists ^ LIST_MAXIMUMS.keys())


def _object_list(gfield: GraphQLField) -> bool:
    """A list of objects that is not a connection."""
    nullable = get_nullable_type(gfield.type)
    inner = get_named_type(gfield.type)
    return is_list_type(nullable) and not is_leaf_type(inner) and "first" not in gfield.args


def _int(literal: IntValueNode) -> int:
    # Long literals are refused by validation anyway, and int() of them is slow.
    return int(literal.value) if len(literal.value) < 10 else MAX_PAGE


def _selections(selection_set: SelectionSetNode | None) -> Iterator[Any]:
    return iter(selection_set.selections if selection_set else ())


@dataclass
class _Meter:
    """Walks one document: counts every definition once, then costs fragments bottom-up."""

    schema: GraphQLSchema
    variables: Mapping[str, Any]
    result: Measurement = field(default_factory=Measurement)
    measured: dict[str, Measure] = field(default_factory=dict)
    defaults: dict[str, int] = field(default_factory=dict)

    def count(self, definition: DefinitionNode) -> list[str]:
        """Count what `definition` writes; return the names of the fragments it spreads."""
        self.result.visited += 1
        self.result.directives += len(getattr(definition, "directives", None) or ())
        for variable in getattr(definition, "variable_definitions", None) or ():
            self.result.directives += len(variable.directives or ())
            if isinstance(variable.default_value, IntValueNode):
                # Fragments are costed once for all operations: take the largest default.
                name = variable.variable.name.value
                value = _int(variable.default_value)
                self.defaults[name] = max(self.defaults.get(name, value), value)
        spreads: list[str] = []
        stack = [getattr(definition, "selection_set", None)]
        while stack:
            for selection in _selections(stack.pop()):
                self.result.visited += 1
                self.result.directives += len(selection.directives or ())
                if isinstance(selection, FragmentSpreadNode):
                    spreads.append(selection.name.value)
                    continue
                if isinstance(selection, FieldNode):
                    self.result.fields += 1
                    self.result.aliases += selection.alias is not None
                stack.append(selection.selection_set)
        return spreads

    def selection_set(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None, level: int
    ) -> Measure:
        """Cost and depth of a selection set; spreads reuse their fragment's measure."""
        cost = depth = fields = 0
        for selection in selection_set.selections:
            self.result.visited += 1
            part = self._selection(selection, parent, level)
            # Branches on different types are added up, not maxed: an upper bound.
            cost = min(cost + part.cost, COST_CEILING)
            depth = max(depth, part.depth)
            fields = min(fields + part.fields, COST_CEILING)
        return Measure(cost, depth, fields)

    def _selection(
        self, selection: SelectionNode, parent: GraphQLNamedType | None, level: int
    ) -> Measure:
        if isinstance(selection, FieldNode):
            return self.field(selection, parent, level)
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            inner = self.schema.get_type(condition.name.value) if condition else parent
            return self.selection_set(selection.selection_set, inner, level)
        assert isinstance(selection, FragmentSpreadNode)
        # Unknown fragments cost nothing here; validation refuses them.
        return self.measured.get(selection.name.value, Measure())

    def field(self, node: FieldNode, parent: GraphQLNamedType | None, level: int) -> Measure:
        """1 for the field, plus what it contains times how many items it holds."""
        if level >= MAX_DEPTH:
            # Stops the walk early, which also bounds the recursion.
            raise refusal(f"The document nests fields more than {MAX_DEPTH} deep.", MAX_DEPTH)
        if node.selection_set is None:
            return Measure(1, 1, 1)
        definition = self._field_definition(parent, node.name.value)
        inner_type = get_named_type(definition.type) if definition else None
        inner = self.selection_set(node.selection_set, inner_type, level + 1)
        times = self._multiplier(node, definition, parent)
        return Measure(min(1 + times * inner.cost, COST_CEILING), inner.depth + 1, 1)

    def _field_definition(self, parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
        if name == "__typename":
            return TypeNameMetaFieldDef
        if parent is not None and parent is self.schema.query_type:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            found: GraphQLField | None = parent.fields.get(name)
            return found
        return None  # unknown: validation refuses the document later

    def _multiplier(
        self, node: FieldNode, definition: GraphQLField | None, parent: GraphQLNamedType | None
    ) -> int:
        if definition is None:
            return 1
        first = definition.args.get("first")
        if first is not None:
            return self._page_size(node, first)
        if not is_list_type(get_nullable_type(definition.type)) or parent is None:
            return 1
        if is_introspection_type(parent):
            return INTROSPECTION_LIST_ESTIMATE
        # The list of a connection is its page, already counted by the field's `first`.
        if parent.name in page_types(self.schema):
            return 1
        return LIST_MAXIMUMS.get(f"{parent.name}.{node.name.value}", UNLISTED)

    def _page_size(self, node: FieldNode, argument: GraphQLArgument) -> int:
        """The `first` a field will get: literal, variable, or the schema's default."""
        value = argument.default_value
        written = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
        if isinstance(written, IntValueNode):
            value = _int(written)
        elif isinstance(written, VariableNode):
            self.result.depends_on_variables = True
            name = written.name.value
            value = self.variables.get(name, self.defaults.get(name, value))
        elif written is not None:
            value = MAX_PAGE  # not an integer: refused later, counted as a full page here
        if value is None:  # null means the default
            value = argument.default_value
        if value is Undefined or not isinstance(value, int) or isinstance(value, bool):
            return MAX_PAGE
        # A page holds 1 to MAX_PAGE items; other values are refused when the field runs.
        return min(max(value, 1), MAX_PAGE)


def _fragment_order(spreads: dict[str, list[str]]) -> list[str]:
    """Fragments so that each comes after those it spreads; a cycle is refused."""
    order: list[str] = []
    state: dict[str, bool] = {}  # False while on the path, True once placed
    for root in spreads:
        if root in state:
            continue
        state[root] = False
        path = [(root, iter(spreads[root]))]
        while path:
            name, children = path[-1]
            child = next(children, None)
            if child is None:
                path.pop()
                state[name] = True
                order.append(name)
            elif child not in spreads or state.get(child) is True:
                continue
            elif child in state:
                raise refusal(f"Fragment {child} spreads itself, so the document never ends.")
            else:
                state[child] = False
                path.append((child, iter(spreads[child])))
    return order


def measure(
    document: DocumentNode,
    schema: GraphQLSchema,
    *,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Measurement:
    """Measure `document` in one linear pass (each fragment once).

    Costs the operation named `operation_name`, or every operation when none is chosen
    (the highest counts). Raises a QUERY_TOO_COMPLEX PublicError for a fragment cycle
    or fields nested deeper than MAX_DEPTH, where measuring cannot go on.
    """
    meter = _Meter(schema, variables or {})
    fragments: dict[str, FragmentDefinitionNode] = {}
    spreads: dict[str, list[str]] = {}
    operations: list[OperationDefinitionNode] = []
    for definition in document.definitions:
        names = meter.count(definition)
        if isinstance(definition, FragmentDefinitionNode):
            meter.result.fragments += 1
            fragments[definition.name.value] = definition
            spreads[definition.name.value] = names
        elif isinstance(definition, OperationDefinitionNode):
            operations.append(definition)
    for name in _fragment_order(spreads):
        fragment = fragments[name]
        condition = schema.get_type(fragment.type_condition.name.value)
        meter.measured[name] = meter.selection_set(fragment.selection_set, condition, 0)
    chosen = [op for op in operations if op.name and op.name.value == operation_name]
    for operation in chosen or operations:
        root = schema.get_root_type(operation.operation)
        result = meter.selection_set(operation.selection_set, root, 0)
        meter.result.cost = max(meter.result.cost, result.cost)
        meter.result.depth = max(meter.result.depth, result.depth)
        if operation.operation is OperationType.MUTATION:
            meter.result.mutation_fields = max(meter.result.mutation_fields, result.fields)
    return meter.result


def check(measurement: Measurement, max_cost: int) -> None:
    """Refuse (raise QUERY_TOO_COMPLEX) a document over any limit, naming it."""
    written = (
        ("fragment definitions", measurement.fragments, MAX_FRAGMENTS),
        ("field selections", measurement.fields, MAX_FIELDS),
        ("aliases", measurement.aliases, MAX_ALIASES),
        ("directives", measurement.directives, MAX_DIRECTIVES),
    )
    for what, count, limit in written:
        if count > limit:
            raise refusal(f"The document has {count} {what}; the limit is {limit}.", limit, count)
    if measurement.mutation_fields > MAX_MUTATION_FIELDS:
        raise refusal(
            f"The mutation has {measurement.mutation_fields} root fields; the limit is "
            f"{MAX_MUTATION_FIELDS}.",
            MAX_MUTATION_FIELDS,
            measurement.mutation_fields,
        )
    if measurement.depth > MAX_DEPTH:
        raise refusal(
            f"The operation nests fields {measurement.depth} deep; the limit is {MAX_DEPTH}.",
            MAX_DEPTH,
            measurement.depth,
        )
    if measurement.cost > max_cost:
        ceiling = measurement.cost >= COST_CEILING
        shown = f"at least {COST_CEILING:,}" if ceiling else f"{measurement.cost:,}"
        raise refusal(
            f"The operation's cost is {shown} (estimated nodes); the limit is {max_cost:,}.",
            max_cost,
            measurement.cost,
        )


@dataclass
class KnownDocument:
    """A document parsed once, and what was found about it that no request changes."""

    document: DocumentNode
    # Measurements of its operations (by the operation name asked for) whose cost no
    # variable decides.
    measurements: dict[str | None, Measurement] = field(default_factory=dict)
    # graphql-core's findings, with the rules they were found by.
    rules: Sequence[type[ASTValidationRule]] = ()
    errors: list[GraphQLError] | None = None

    def names(self, operation_name: str | None) -> bool:
        """True if `operation_name` is None or names one of the document's operations."""
        return operation_name is None or any(
            isinstance(d, OperationDefinitionNode) and d.name and d.name.value == operation_name
            for d in self.document.definitions
        )


class DocumentCache:
    """Documents by their text, least recently used dropped first (one per schema).

    Only what a request cannot change is kept: the parsed document, the measure of an
    operation whose cost depends on no variable, and validation's findings. The limits
    are checked against the kept measure on every request, so a refused document stays
    refused.
    """

    def __init__(
        self,
        size: int = CACHED_DOCUMENTS,
        max_chars: int = CACHED_TEXT_CHARS,
        total_chars: int = CACHED_TEXT_TOTAL,
    ) -> None:
        self.size = size
        self.max_chars = max_chars
        self.total_chars = total_chars
        self._known: OrderedDict[str, KnownDocument] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._known)

    def parse(self, query: str) -> DocumentNode:
        """The document of `query`, parsed with the budgets the first time it is seen."""
        known = self._known.get(query)
        if known is not None:
            self._known.move_to_end(query)
            return known.document
        document = parse_document(query)
        if len(query) <= min(self.max_chars, self.total_chars) and self.size > 0:
            self._known[query] = KnownDocument(document)
            self._chars += len(query)
            while len(self._known) > self.size or self._chars > self.total_chars:
                dropped, _ = self._known.popitem(last=False)
                self._chars -= len(dropped)
        return document

    def known(self, query: str | None, document: DocumentNode) -> KnownDocument | None:
        """What is kept about `document`, if it is the one parsed from `query`."""
        known = self._known.get(query) if query else None
        return known if known is not None and known.document is document else None


class DocumentLimits(SchemaExtension):
    """Parses with the token budget, refuses documents over the limits before validation,
    then validates; all three through the schema's DocumentCache."""

    def __init__(self, *, max_cost: int, cache: DocumentCache | None = None) -> None:
        self.max_cost = max_cost
        self.cache = cache if cache is not None else DocumentCache(size=0)

    def on_parse(self) -> Iterator[None]:
        """Parse here, so the parser stops at the token budget.

        strawberry's documented place for custom parsing: it parses only when this
        left `graphql_document` empty, and its ParseOptions cannot carry the budget.
        """
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = self.cache.parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        """Measure first: a refused document is never validated or executed.

        A document that passes is validated here, once per text and set of rules;
        strawberry then skips its own validation, as it does after its ValidationCache.
        """
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            known = self.cache.known(context.query, document)
            try:
                check(self._measure(document, known), self.max_cost)
            except GraphQLError as error:
                context.pre_execution_errors = [error]
            else:
                context.pre_execution_errors = self._validate(document, known)
        yield

    def _measure(self, document: DocumentNode, known: KnownDocument | None) -> Measurement:
        context = self.execution_context
        name = context.operation_name
        if known is not None and name in known.measurements:
            return known.measurements[name]
        measurement = measure(
            document,
            # strawberry's handle on graphql-core's schema, as its own extensions use.
            context.schema._schema,
            operation_name=name,
            variables=context.variables,
        )
        if known is not None and not measurement.depends_on_variables and known.names(name):
            known.measurements[name] = measurement
        return measurement

    def _validate(self, document: DocumentNode, known: KnownDocument | None) -> list[GraphQLError]:
        context = self.execution_context
        rules = context.validation_rules
        if known is not None and known.errors is not None and known.rules == rules:
            return list(known.errors)
        errors = validate_document(context.schema._schema, document, rules)
        if known is not None:
            known.rules, known.errors = rules, errors
        return list(errors)


class QueryTimeLimit(SchemaExtension):
    """Stops a query that runs longer than `seconds`; a mutation runs to its end.

    A mutation stopped half-way would keep the part of its writes already committed and
    answer as if none were: mutations are bounded before they run instead, by
    MAX_MUTATION_FIELDS and by each service's own limits. Work that never awaits is not
    interrupted by any time limit; the cost limit is what bounds it.
    """

    def __init__(self, *, seconds: float) -> None:
        self.seconds = seconds

    async def on_execute(self) -> AsyncIterator[None]:
        """Run the operation, within the time limit if it is a query."""
        context = self.execution_context
        if context.operation_type is not ExecutedOperationType.QUERY:
            yield
            return
        timeout = asyncio.timeout(self.seconds)
        try:
            async with timeout:
                yield
        except TimeoutError:
            if not timeout.expired():
                raise
            log.warning("operation %s stopped after %ss", context.operation_name, self.seconds)
            message = f"The operation took longer than {self.seconds:g} seconds and was stopped."
            raise PublicError(message, "TIMEOUT") from None
