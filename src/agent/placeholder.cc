namespace medic::agent {}
