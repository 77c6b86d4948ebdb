"""Pipeline definitions: parsing pipeline.yml, conditions, branch filters, jobs, the step graph.

Pure: no I/O and nothing else of Kiteline's. The server calls only what is exported here.
"""

from kiteline.pipeline.branches import branch_matches
from kiteline.pipeline.conditions import (
    KNOWN_VARIABLES,
    ConditionContext,
    evaluate_condition,
    validate_condition,
)
from kiteline.pipeline.errors import PipelineError, PipelineIssue
from kiteline.pipeline.expand import JobSpec, expand_command_step
from kiteline.pipeline.graph import GraphEdge, GraphNode, build_step_graph
from kiteline.pipeline.interpolate import interpolate, interpolate_pipeline
from kiteline.pipeline.models import (
    ANONYMOUS_DIMENSION,
    AutomaticRetryRule,
    BlockStep,
    CommandStep,
    Dependency,
    Field,
    GroupStep,
    ManualRetry,
    Matrix,
    MatrixAdjustment,
    Pipeline,
    Retry,
    SelectField,
    SelectOption,
    Skip,
    SoftFail,
    Step,
    TextField,
    TriggerBuild,
    TriggerStep,
    WaitStep,
)
from kiteline.pipeline.parse import check_pipeline, parse_pipeline
from kiteline.pipeline.rest import agent_query_rules, from_legacy_steps, to_rest_steps

__all__ = [
    "ANONYMOUS_DIMENSION",
    "KNOWN_VARIABLES",
    "AutomaticRetryRule",
    "BlockStep",
    "CommandStep",
    "ConditionContext",
    "Dependency",
    "Field",
    "GraphEdge",
    "GraphNode",
    "GroupStep",
    "JobSpec",
    "ManualRetry",
    "Matrix",
    "MatrixAdjustment",
    "Pipeline",
    "PipelineError",
    "PipelineIssue",
    "Retry",
    "SelectField",
    "SelectOption",
    "Skip",
    "SoftFail",
    "Step",
    "TextField",
    "TriggerBuild",
    "TriggerStep",
    "WaitStep",
    "agent_query_rules",
    "branch_matches",
    "build_step_graph",
    "check_pipeline",
    "evaluate_condition",
    "expand_command_step",
    "from_legacy_steps",
    "interpolate",
    "interpolate_pipeline",
    "parse_pipeline",
    "to_rest_steps",
    "validate_condition",
]
