"""Pure renderers, one module per format: a `Plan` or a `DriftReport` to text (`text`), JSON
(`json`), markdown for pull-request comments (`markdown`) and a self-contained page (`html`)."""


def percent(share: float) -> str:
    """0.16129 -> "16.1%"; never rounds a share below 1 up to "100%"."""
    value = share * 100
    if share < 1 and value > 99.9:
        return "99.9%"
    return f"{value:.1f}%"


def with_versions(count: int) -> str:
    """What a model line takes along: "with 1 version", "with 5 versions"."""
    return f"with {count} version" if count == 1 else f"with {count} versions"
