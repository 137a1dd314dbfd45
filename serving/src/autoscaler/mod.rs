//! The KPA autoscaler's maths (placeholder: the autoscaler lands here).
