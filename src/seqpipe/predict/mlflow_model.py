"""Models-from-code entry of seqpipe's MLflow model (copied into each logged model; see `seqpipe.predict.pyfunc`)."""

from mlflow.models import set_model

from seqpipe.predict.pyfunc import SeqpipeModel

set_model(SeqpipeModel())
