namespace medic::server {}
