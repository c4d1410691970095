-- How a tool that needs the person's confirmation was let through: 'confirmed' (the person
-- said yes), 'declined' (no, or cancelled: the tool did not act) or 'unconfirmed' (the
-- client cannot ask and the operator allows such calls). NULL for tools that do not ask.

ALTER TABLE audit ADD COLUMN confirmation TEXT;
