"""Tutorial 5: distil a big CNN into a tiny student, and ship the student as an int8 TFLite file.

A trained teacher's output is richer than the label: for a "7" it may give
0.9 to 7, 0.08 to 1 and almost nothing to 6. That says which digits look
alike, and a small student learns more from it than from the one-hot label.
The temperature T divides the logits before the softmax, flattening the
teacher's distribution so those small probabilities carry weight; the T^2
factor keeps the gradient of the soft term on the same scale whatever T is.

    loss = w * CE(y, student) + (1 - w) * T^2 * KL(softmax(teacher/T) || softmax(student/T)),  w = student_loss_weight

The teacher is frozen and runs in inference mode. Its outputs are computed
once and cached (`cache_teacher_outputs`): on a CPU the teacher's forward pass
would otherwise dominate every epoch. That is valid here because the inputs
are the same every epoch (no random augmentation).

Full-integer int8 TFLite stores weights and activations as 8-bit integers,
calibrated on a representative set drawn from the training data: about 4x
smaller than float32 and fast on phone CPUs and NPUs.

Run: python tutorials/05_distillation_to_tflite_int8.py   (about 90 s; the tests run it as it is)
"""

import os
import tempfile

import tfptm

TEACHER_EPOCHS, STUDENT_EPOCHS = 20, 40  # the smoke run too: BatchNorm needs a few hundred steps, int8 a confident student

images, labels = tfptm.datasets.load_digits()
(x_train, y_train), (x_test, y_test) = tfptm.data.train_test_split(images, labels, test_fraction=0.25, seed=0)
train = tfptm.data.from_arrays(x_train, y_train, seed=0)


def classifier(name, **backbone_args):
    backbone = tfptm.backbones.get(name, input_shape=(8, 8, 1), input_scale=1 / 16, **backbone_args)
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=10))


teacher = classifier("resnet_cnn", filters=(32, 64, 128))
tfptm.finetune(teacher, train, tfptm.training.full(TEACHER_EPOCHS, 1e-3, freeze_batchnorm=False), verbose=0)
student = classifier("vgg_cnn", filters=(8, 16))
print(f"teacher {teacher.count_params():,} parameters, student {student.count_params():,}")

distiller = tfptm.Distiller(teacher, student, tfptm.compress.HeadDistillation(temperature=4.0),
                            student_loss_weight=0.1)
distiller.compile(optimizer="adam")
cached = tfptm.compress.cache_teacher_outputs(teacher, x_train, y_train, seed=0)
distiller.fit(cached, epochs=STUDENT_EPOCHS, verbose=0)

for name, model in (("teacher", teacher), ("student", student)):
    report = tfptm.evaluate(model, x_test, y_test)
    print(f"{name} accuracy on {report['num_examples']} held-out images: {report['accuracy']:.3f}")

lite = tfptm.export.tflite(student, os.path.join(tempfile.mkdtemp(), "digits_student.tflite"), quantization="int8",
                           representative_data=x_train, class_names=[str(d) for d in range(10)])
print(f"int8 student: {lite.path.stat().st_size / 1024:.1f} KiB")
print("TFLite parity:", tfptm.export.check_tflite(lite.path, student, x_test, y_test))
