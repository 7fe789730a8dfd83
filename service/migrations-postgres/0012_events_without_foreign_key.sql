-- Provider events no longer carry a foreign key to their message either (see
-- 0011): the check's plan, kept per connection from a young table's
-- statistics, read the whole of `messages` for each event stored, and a
-- provider sends events at the rate of deliveries (a delivered event for
-- each message with SendGrid, Mailgun, SES and the others). An event is
-- stored only for a message found by its provider id just before; the one
-- statement that deletes a message deletes its events with it.
ALTER TABLE delivery_events DROP CONSTRAINT IF EXISTS delivery_events_message_id_fkey;
