"""What went wrong in a pipeline, and where: issues, the error that carries them, step names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PipelineIssue:
    """One problem. `path` is machine-shaped (`steps[2] (key "build").timeout_in_minutes`);
    `message` names the key and what was expected; `where` says which step in words."""

    path: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class PipelineError(ValueError):
    """A pipeline (or condition, or interpolation) that can't be used, with every issue found."""

    def __init__(self, issues: list[PipelineIssue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))

    def __reduce__(self) -> tuple[type[PipelineError], tuple[list[PipelineIssue]]]:
        # Rebuilt from its issues (not from its message) when it comes back from a process.
        return (type(self), (self.issues,))

    @classmethod
    def single(cls, message: str, *, path: str = "", where: str = "") -> PipelineError:
        return cls([PipelineIssue(path=path, message=message, where=where)])


@dataclass(frozen=True, slots=True)
class StepRef:
    """How issues name a step: `path` for machines (`steps[1] (key "g").steps[0]`), `where`
    for people (`Step 2.1 ("lint")`: the first step of the second top-level step)."""

    path: str = ""
    number: str = ""
    shown: str | None = None

    @classmethod
    def document(cls) -> StepRef:
        return cls()

    @property
    def where(self) -> str:
        if not self.number:
            return ""
        return (
            f'Step {self.number} ("{self.shown}")'
            if self.shown is not None
            else (f"Step {self.number}")
        )

    @property
    def mention(self) -> str:
        """`where` for the middle of a sentence: `step 3 ("build")`."""
        return self.where[:1].lower() + self.where[1:]

    def step(self, index: int, key: str | None, label: str | None) -> StepRef:
        """The step at `index` of this level's `steps` (the document's, or a group's)."""
        tag = ""
        if key is not None:
            tag = f' (key "{key}")'
        elif label is not None:
            tag = f' (label "{label}")'
        path = f"{self.path}.steps[{index}]{tag}" if self.path else f"steps[{index}]{tag}"
        number = f"{self.number}.{index + 1}" if self.number else str(index + 1)
        return StepRef(path=path, number=number, shown=key if key is not None else label)

    def issue(self, key: str, message: str) -> PipelineIssue:
        """An issue about `key` of this step (`key` may be empty: the step itself)."""
        if not key:
            return PipelineIssue(path=self.path, message=message, where=self.where)
        path = f"{self.path}.{key}" if self.path else key
        return PipelineIssue(path=path, message=message, where=self.where)
