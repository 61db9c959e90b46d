"""Training: Lightning modules, losses, metrics, callbacks and the training plan. `masksmith.service.train`
runs the task's trainer (`masksmith.tasks`): `semantic.train_semantic` or `instance.train_instance`."""
