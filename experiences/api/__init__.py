"""The experiences API (DRF): CRUD, activation, assignments; the decision endpoints live in
experiences/decisions/."""
