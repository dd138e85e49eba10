"""The guide's BiLSTM classifier. Worker-side only: imports TensorFlow/Keras."""

from __future__ import annotations

from typing import Any

import keras


def build_model(params: dict[str, Any], input_shape: tuple[int, int], n_classes: int) -> Any:
    """BiLSTM(seq) -> Dropout -> (BiLSTM | GlobalAvgPool) -> Dropout -> Dense -> Dropout -> out.

    Binary tasks get one sigmoid unit, multiclass tasks a softmax layer; the
    loss follows. Compiled with the tuned optimizer and learning rate.
    """
    dropout = float(params["dropout_rate"])
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(int(params["lstm_units_1"]), return_sequences=True)
    )(inputs)
    x = keras.layers.Dropout(dropout)(x)
    if params["use_second_lstm"]:
        x = keras.layers.Bidirectional(keras.layers.LSTM(int(params["lstm_units_2"])))(x)
    else:
        x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(int(params["dense_units"]), activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    binary = n_classes == 2
    outputs = keras.layers.Dense(
        1 if binary else n_classes, activation="sigmoid" if binary else "softmax"
    )(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=_optimizer(params["optimizer_choice"], float(params["learning_rate"])),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _optimizer(name: str, learning_rate: float) -> Any:
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer '{name}'")
