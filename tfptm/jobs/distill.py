"""The distill section: a student trained from a teacher (`tfptm.Distiller`) in place of the finetune stages.

`DISTILLERS` maps the section's kind to its step; the runner (`tfptm.jobs.train`) calls it.

Example:
>>> sorted(DISTILLERS)
['distill']
"""

import tfptm
from tfptm.jobs.fit import recipe_optimizer
from tfptm.jobs.model import check_examples_fit, sample_shape, test_metrics
from tfptm.rundir import load_model

#: "distill" -> distill(recipe, student, data, progress, verbose) -> (history, metrics of the teacher and student).
DISTILLERS = {}


def distill(recipe, student, data, progress, verbose=0):
    """Trains `student` from `distill.teacher` with `tfptm.Distiller`, in place of the finetune section's stages.

    The teacher is a `.keras` model or a run directory's `model.keras`, on
    the same inputs and classes. Array data (the same inputs every epoch) is
    labelled with the teacher's outputs once (`cache_teacher_outputs`); other
    pipelines run the teacher on every batch. Returns `(history, metrics)`:
    test-split metrics of `"model"` (the student) and `"teacher"`, each with
    its `parameters`.
    """
    from tfptm.compress import HeadDistillation, cache_teacher_outputs

    section = recipe.distill
    progress(f"loading the teacher {section.teacher}")
    teacher = load_model(section.teacher)
    check_examples_fit(teacher, sample_shape(data))
    with student.distribute_strategy.scope():
        distiller = tfptm.Distiller(teacher, student, HeadDistillation(section.temperature),
                                     student_loss_weight=section.alpha)
        distiller.compile(recipe_optimizer(recipe, section.learning_rate))
    train_data = data.train
    if data.x_train is not None:
        train_data = cache_teacher_outputs(teacher, data.x_train, data.y_train, batch_size=recipe.data.batch_size,
                                           seed=recipe.seed)
    progress(f"distilling {teacher.count_params():,} teacher parameters into {student.count_params():,} "
             f"({section.epochs} epochs, alpha {section.alpha}, temperature {section.temperature})")
    fitted = distiller.fit(train_data, epochs=section.epochs, validation_data=data.validation, verbose=verbose)
    history = {k: [float(v) for v in vs] for k, vs in fitted.history.items()}
    history["stage"] = ["distill"] * section.epochs
    progress(f"evaluating the student and the teacher on {data.num_test} test examples")
    metrics = {name: {**test_metrics(model, data), "parameters": model.count_params()}
               for name, model in (("model", student), ("teacher", teacher))}
    return history, metrics


DISTILLERS["distill"] = distill


def distillation_section(metrics):
    """The report.md lines comparing the teacher with the distilled student (`metrics["teacher"]`, `["model"]`).

    Example:
    >>> print(distillation_section({"teacher": {"accuracy": 0.9, "parameters": 4000},
    ...                             "model": {"accuracy": 0.85, "parameters": 1000}}), end="")
    <BLANKLINE>
    ## Distillation
    <BLANKLINE>
    | | parameters | test accuracy |
    |---|---:|---:|
    | teacher | 4,000 | 0.900 |
    | student | 1,000 | 0.850 |
    <BLANKLINE>
    The student has 25.0% of the teacher's parameters and 94.4% of its accuracy.
    """
    teacher, student = metrics["teacher"], metrics["model"]
    key, what = ("accuracy", "accuracy") if "accuracy" in teacher else ("f1", "entity F1")  # token classifiers: F1
    rows = ["", "## Distillation", "", f"| | parameters | test {what} |", "|---|---:|---:|"]
    rows += [f"| {name} | {m['parameters']:,} | {m[key]:.3f} |" for name, m in (("teacher", teacher), ("student", student))]
    share = student[key] / teacher[key] if teacher[key] else float("nan")
    rows += ["", f"The student has {100 * student['parameters'] / teacher['parameters']:.1f}% of the teacher's "
             f"parameters and {100 * share:.1f}% of its {what}.", ""]
    return "\n".join(rows)
